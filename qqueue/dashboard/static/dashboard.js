// Live pages: a page whose <body> has data-refresh-s fetches itself and swaps in each fresh [data-live] region
// (matched by id), without a reload. With data-events it listens to that event stream and refreshes when a status
// changes (at most once per data-refresh-s), polling only every data-backstop-s for what no event announces;
// without a stream (or while it reconnects) it polls every data-refresh-s. It stops when the fresh page asks for
// no more refreshes (a task that ended), and skips its turn while the tab is hidden.
(function () {
  "use strict";
  var data = document.body.dataset;
  var period = Number(data.refreshS || 0) * 1000;
  if (!period) return;
  var source = data.events && window.EventSource ? new EventSource(data.events) : null;
  var last = 0, queued = null, stopped = false, timer = null;

  function stop() {
    stopped = true;
    if (source) source.close();
    if (timer) clearTimeout(timer);
  }

  function poll() {
    var streaming = source && source.readyState === EventSource.OPEN;
    timer = setTimeout(function () { if (!document.hidden) refresh(); poll(); },
                       streaming ? Number(data.backstopS || 30) * 1000 : period);
  }

  function refresh() {
    if (stopped) return;
    last = Date.now();
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (region) {
          var next = fresh.getElementById(region.id);
          // A region holding the field being typed in waits for the next turn, so no typing is lost.
          var typing = region.contains(document.activeElement) && document.activeElement.tagName === "INPUT";
          if (next && !typing) region.innerHTML = next.innerHTML;
        });
        if (!Number(fresh.body.dataset.refreshS || 0)) stop();
      })
      .catch(function () { /* the next event or turn tries again */ });
  }

  function changed() {
    if (stopped || queued) return;
    queued = setTimeout(function () { queued = null; refresh(); }, Math.max(0, last + period - Date.now()));
  }

  if (source) {
    source.addEventListener("task.status", changed);
    source.addEventListener("job.status", changed);
  }
  poll();
})();
