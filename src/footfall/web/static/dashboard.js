// Footfall dashboard: a tooltip on the chart and the realtime count. The page works without it.
(function () {
  "use strict";

  // Chart tooltip: from each point's data-label and data-value (also in its <title>).
  var box = document.getElementById("chart");
  var tip = document.getElementById("chart-tip");
  if (box && tip) {
    var current = null;
    box.addEventListener("mousemove", function (e) {
      var pt = e.target.closest ? e.target.closest(".pt") : null;
      if (!pt) { return; }
      if (current && current !== pt) { current.classList.remove("on"); }
      current = pt;
      pt.classList.add("on");
      var dot = pt.querySelector("circle").getBoundingClientRect();
      var rect = box.getBoundingClientRect();
      tip.textContent = pt.getAttribute("data-label") + ": " + pt.getAttribute("data-value");
      tip.style.left = (dot.left + dot.width / 2 - rect.left) + "px";
      tip.style.top = (dot.top - rect.top) + "px";
      tip.hidden = false;
    });
    box.addEventListener("mouseleave", function () {
      tip.hidden = true;
      if (current) { current.classList.remove("on"); current = null; }
    });
  }

  // Close the date picker with Escape, returning focus to it.
  var picker = document.getElementById("picker");
  if (picker) {
    picker.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && picker.open) {
        picker.open = false;
        picker.querySelector("summary").focus();
      }
    });
  }

  // Realtime: poll the site's small JSON endpoint while the page is visible.
  var realtime = document.getElementById("realtime");
  if (realtime && window.fetch) {
    var url = realtime.getAttribute("data-url");
    var refresh = function () {
      if (document.hidden) { return; }
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) { return; }
          ["realtime-visitors", "realtime-count"].forEach(function (id) {
            var el = document.getElementById(id);
            if (el) { el.textContent = String(data.visitors); }
          });
          var chart = document.getElementById("realtime-chart");
          if (chart) { chart.innerHTML = data.chart; }  // SVG made and escaped by our own server
        })
        .catch(function () { /* offline for a moment: try again next time */ });
    };
    window.setInterval(refresh, 15000);
    document.addEventListener("visibilitychange", refresh);
  }
})();
