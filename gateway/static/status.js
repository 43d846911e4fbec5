// The "confirming with the store" page: ask the gateway every few seconds, move on when it is done.
(function () {
  "use strict";
  var box = document.getElementById("status"), next = document.getElementById("status-next");
  if (!box || !window.fetch) return;
  var interval = (parseInt(box.getAttribute("data-interval"), 10) || 3) * 1000, failures = 0;
  next.insertBefore(document.createTextNode(next.getAttribute("data-auto") + " "), next.firstChild);
  function poll() {
    fetch(box.getAttribute("data-poll"), {credentials: "same-origin", cache: "no-store", headers: {Accept: "application/json"}})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (s) {
        failures = 0;
        if (s.waiting) return schedule();
        next.textContent = next.getAttribute("data-moving");
        window.location.assign(s.next);
      })
      .catch(function () { failures += 1; schedule(); });
  }
  function schedule() { window.setTimeout(poll, interval * Math.min(1 + failures, 5)); }
  schedule();
})();
