/* Footfall tracker: pageviews (SPA navigation too) and events, no cookies, no storage.
   <script defer src="https://FOOTFALL/js/footfall.js" data-site="TRACKING_ID"
           data-outbound data-downloads data-allow-localhost></script> */
(function (w, d) {
  var n = navigator, s = d.currentScript, a = function (k) { return s && s.hasAttribute("data-" + k); };
  var noop = function () {}, api = { event: noop };
  w.footfall = w.hk = api;
  if (!s) return;
  var base = s.src.replace(/\/js\/footfall\.js.*$/, ""), site = s.getAttribute("data-site") || undefined;
  // Visitors who ask not to be tracked are not, and local pages only when asked.
  if (n.doNotTrack == "1" || w.doNotTrack == "1" || n.globalPrivacyControl) return;
  if (/^(localhost|127\.|\[::1\]$|0\.0\.0\.0$)/.test(location.hostname) && !a("allow-localhost")) return;

  function send(path, body) {
    var json = JSON.stringify(body);
    try { if (n.sendBeacon && n.sendBeacon(base + path, new Blob([json], { type: "text/plain" }))) return; } catch (e) {}
    if (w.fetch) w.fetch(base + path, { method: "POST", body: json, keepalive: true, headers: { "Content-Type": "text/plain" } })["catch"](noop);
  }
  var last;
  function pageview() {
    if (location.href == last) return;  // replaceState with the same URL, hash-only history noise
    last = location.href;
    send("/ingest", { url: last, referrer: d.referrer, screen_width: w.screen && screen.width, language: n.language, site_id: site });
  }
  api.event = function (name, props) {
    send("/ingest/event", { site_id: site, name: String(name), url: location.href, referrer: d.referrer, props: props || {} });
  };
  ["pushState", "replaceState"].forEach(function (m) {
    var orig = history[m];
    history[m] = function () { var r = orig.apply(this, arguments); pageview(); return r; };
  });
  w.addEventListener("popstate", pageview);
  var files = /\.(pdf|zip|gz|tgz|rar|7z|dmg|exe|msi|pkg|deb|rpm|apk|iso|csv|xlsx?|docx?|pptx?|mp3|mp4|mov|avi|epub)$/i;
  if (a("outbound") || a("downloads")) d.addEventListener("click", function (e) {
    var el = e.target && e.target.closest && e.target.closest("a[href]");
    if (!el || !/^https?:$/.test(el.protocol)) return;
    if (a("downloads") && files.test(el.pathname)) api.event("File Download", { url: el.href });
    else if (a("outbound") && el.host != location.host) api.event("Outbound Link", { url: el.href });
  }, true);
  pageview();
})(window, document);
