// AuthBridge hosted connect page: the search box, and handing the result to the opener of a popup.
// Everything works without this script, except closing the popup by itself.
(function () {
  "use strict";

  function setUpFilter(input) {
    var list = document.getElementById(input.getAttribute("data-filter"));
    var none = document.getElementById("connect-none");
    input.addEventListener("input", function () {
      var words = input.value.toLowerCase().trim().split(/\s+/);
      var shown = 0;
      list.querySelectorAll("li").forEach(function (item) {
        var name = item.getAttribute("data-name") || "";
        var match = words.every(function (w) { return name.indexOf(w) !== -1; });
        item.hidden = !match;
        if (match) { shown += 1; }
      });
      if (none) { none.hidden = shown !== 0; }
    });
  }

  function report(result) {
    var origin = result.getAttribute("data-origin");
    if (!origin || !window.opener) { return; }
    var message;
    try { message = JSON.parse(result.getAttribute("data-message")); } catch (e) { return; }
    // Only the application's own origin (the session's return_to) may read the result.
    window.opener.postMessage(message, origin);
    window.close();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[data-filter]").forEach(setUpFilter);
    var result = document.getElementById("connect-result");
    if (result) { report(result); }
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
  });
})();
