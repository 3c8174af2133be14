// Live refresh, until the event stream pushes changes: a page whose <body> has data-refresh-s fetches itself that
// often and swaps in each fresh [data-live] region (matched by id), without a reload. It stops when the fresh
// page asks for no more refreshes (a task that ended), and skips its turn while the tab is hidden.
(function () {
  "use strict";
  var period = Number(document.body.dataset.refreshS || 0);
  if (!period) return;
  var timer = setInterval(function () {
    if (document.hidden) return;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (region) {
          var next = fresh.getElementById(region.id);
          if (next) region.innerHTML = next.innerHTML;
        });
        if (!Number(fresh.body.dataset.refreshS || 0)) clearInterval(timer);
      })
      .catch(function () { /* the next turn tries again */ });
  }, period * 1000);
})();
