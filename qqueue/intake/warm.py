"""Imported by the forkserver (`qqueue.forkserver`): loads and warms what intake's parser processes run, once, so
that every process forked from it answers its first request as fast as its hundredth."""

from __future__ import annotations

from qqueue.execution.backends import available_backends
from qqueue.intake import pipeline
from qqueue.intake.model import IntakeRequest

_WARM_UP = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\ngate g a { h a; }\nqubit[2] q;\nbit[2] c;\ng q[0];\ncx q[0], q[1];\n'
    "c = measure q;\n",
    'OPENQASM 2.0;\ninclude "qelib1.inc";\ngate g a { h a; }\nqreg q[2];\ncreg c[2];\ng q[0];\ncx q[0],q[1];\n'
    "measure q -> c;\n",
)

try:
    for program in _WARM_UP:
        pipeline.run(IntakeRequest(qc=program, shots=1))
    # A submission naming a device reads the list of devices, whose import alone is seconds on a busy host:
    # paid once here, not inside the first such submission's deadline.
    available_backends()
except Exception:  # warming is an optimisation; a failure here shows again, properly, on a real request
    pass
