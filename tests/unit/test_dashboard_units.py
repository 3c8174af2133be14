"""The dashboard's pure parts: chart geometry, the task list's filter form and the queue limit form."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from litestar.exceptions import ValidationException

from qqueue.api.schemas import MAX_RUNNING, DurationHistogram, QueueLimit, ThroughputMinute
from qqueue.dashboard import charts, filters
from qqueue.dashboard.actions import LimitForm
from qqueue.store.reads import encode_cursor


def test_stacked_bars_scale_to_the_peak_and_skip_empty_segments():
    chart = charts.bar_chart([[("completed", 3), ("failed", 1)], [("completed", 0), ("failed", 0)]],
                             ["a", "b"], ["A", "B"])
    assert chart.peak == 4 and not chart.empty
    completed, failed = chart.bars
    assert (completed.series, failed.series) == ("completed", "failed")
    # Stacked: the failed segment sits on the completed one, and the whole bar reaches the top of the plot.
    assert failed.y + failed.height == pytest.approx(completed.y)
    assert completed.height == pytest.approx(3 * failed.height)
    assert failed.y == pytest.approx(charts.TOP)
    assert [text for _, text in chart.labels] == ["a", "b"]
    assert charts.bar_chart([[("tasks", 0)]], ["x"], ["x"]).empty


def test_throughput_labels_count_back_from_now_every_ten_minutes():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    minutes = [ThroughputMinute(minute=start + timedelta(minutes=i), completed=i % 2, failed=0, cancelled=0)
               for i in range(60)]
    chart = charts.throughput_chart(minutes)
    assert [text for _, text in chart.labels] == ["-50m", "-40m", "-30m", "-20m", "-10m", "now"]
    assert len(chart.bars) == 30 and chart.peak == 1
    assert chart.bars[0].title == "00:01 UTC: 1 completed"


def test_duration_buckets_are_named_by_their_edges():
    short, full = charts.duration_labels([0.01, 0.1, 1.0])
    assert short == ["<10ms", "<100ms", "<1s", "≥1s"]
    assert full == ["<10ms", "10ms–100ms", "100ms–1s", "≥1s"]
    chart = charts.duration_chart(DurationHistogram(edges_s=[0.01, 0.1, 1.0], tasks=[0, 2, 0, 1]))
    assert [b.title for b in chart.bars] == ["10ms–100ms: 2 tasks", "≥1s: 1 tasks"]


def test_counts_come_from_a_result_or_its_first_parameter_set_and_wide_registers_are_capped():
    assert charts.counts_of({"counts": {"00": 5, "11": 3}}) == {"00": 5, "11": 3}
    assert charts.counts_of({"counts": [{"0": 1}, {"1": 1}]}) == {"0": 1}
    assert charts.counts_of({"statevector": [1, 0]}) is None
    assert charts.counts_of({"counts": {"0": "x"}}) is None
    assert charts.counts_of([1, 2]) is None
    wide = {format(i, "08b"): i + 1 for i in range(200)}
    chart = charts.counts_chart(wide)
    assert len(chart.bars) == charts.MAX_OUTCOMES
    assert chart.bars[-1].title.startswith("other: ")
    assert sum(int(b.title.split(": ")[1].split()[0]) for b in chart.bars) == sum(wide.values())


def test_the_filter_form_reads_every_filter_of_the_task_list():
    cursor = encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), uuid.uuid4())
    form = filters.parse({"status": ["failed", "running"], "queue": ["bulk"], "kind": ["simulate"],
                          "tags": ["a, b c"], "created_after": ["2026-01-31T09:30"],
                          "created_before": ["2026-02-01T00:00:00+00:00"], "limit": ["25"], "cursor": [cursor]})
    where = form.list_filter("tenant-a")
    assert where.statuses == ["failed", "running"] and where.tags == ["a", "b", "c"]
    assert (where.queue, where.kind, where.limit, where.tenant) == ("bulk", "simulate", 25, "tenant-a")
    # A time without an offset, as a datetime-local field sends it, is UTC.
    assert where.created_after == datetime(2026, 1, 31, 9, 30, tzinfo=UTC)
    assert where.cursor == cursor
    again = filters.parse(parse_qs(form.query()))
    assert again == form
    assert "cursor" not in form.query(cursor=None)
    assert filters.parse({"queue": [""], "status": []}) == filters.TaskFilterForm()


@pytest.mark.parametrize(("query", "words"), [
    ({"status": ["sleeping"]}, "status"),
    ({"queue": ["two words"]}, "queue"),
    ({"kind": ["x" * 65]}, "kind"),
    ({"limit": ["0"]}, "limit"),
    ({"limit": ["many"]}, "limit"),
    ({"tags": ["nul\x00"]}, "tags"),
    ({"created_after": ["yesterday"]}, "created_after"),
    ({"cursor": ["not-a-cursor"]}, "cursor"),
])
def test_a_filter_the_api_refuses_is_refused_in_words(query, words):
    with pytest.raises(filters.FilterError, match=words):
        filters.parse(query)


@pytest.mark.parametrize(("typed", "limit"), [("3", 3), (" 12 ", 12), ("", None), (str(MAX_RUNNING), MAX_RUNNING)])
def test_the_limit_form_reads_a_limit_as_the_apis_body(typed, limit):
    assert LimitForm(max_running=typed).limit() == QueueLimit(max_running=limit)


@pytest.mark.parametrize("typed", ["0", "-1", "2.5", "many", "\u0663", str(MAX_RUNNING + 1)])
def test_the_limit_form_refuses_what_the_api_refuses_naming_the_apis_bound(typed):
    with pytest.raises(ValidationException, match=f"from 1 to {MAX_RUNNING:,}"):
        LimitForm(max_running=typed).limit()
