// Klaxon works without JavaScript; this only keeps an open incident's timeline live.
(function () {
  "use strict";
  var list = document.getElementById("timeline");
  var article = document.querySelector("article.incident");
  if (!list || !article) return;
  var reference = article.getAttribute("data-reference");
  var busy = false;
  function poll() {
    if (busy || document.hidden) return;
    busy = true;
    var after = list.getAttribute("data-after") || "0";
    fetch("/incidents/" + encodeURIComponent(reference) + "/timeline?after=" + encodeURIComponent(after), {
      credentials: "same-origin",
      headers: { "Accept": "text/html" }
    }).then(function (res) {
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.text();
    }).then(function (html) {
      var tmp = document.createElement("ol");
      tmp.innerHTML = html;
      var items = tmp.querySelectorAll("li.event");
      for (var i = 0; i < items.length; i++) {
        var seq = items[i].getAttribute("data-seq");
        if (list.querySelector('li[data-seq="' + seq + '"]')) continue;
        items[i].classList.add("is-new");
        list.appendChild(items[i]);
        list.setAttribute("data-after", seq);
      }
    }).catch(function () { /* a missed poll is retried by the next one */ })
      .then(function () { busy = false; });
  }
  setInterval(poll, 4000);
  document.addEventListener("visibilitychange", poll);
})();
