// AuthBridge console: show the fields of the chosen auth type and grant type; copy buttons.
// Everything works without this script: then every section stays visible.
(function () {
  "use strict";

  function applyVisibility(form) {
    var type = form.querySelector("[name='auth.type']");
    var grant = form.querySelector("[name='oauth2.grant_type']");
    var authType = type ? type.value : "";
    var grantType = grant ? grant.value : "";
    form.querySelectorAll("[data-auth]").forEach(function (el) {
      el.hidden = el.getAttribute("data-auth").split(" ").indexOf(authType) === -1;
    });
    form.querySelectorAll("[data-grant]").forEach(function (el) {
      el.hidden = el.getAttribute("data-grant") !== grantType;
    });
  }

  function setUpForm(form) {
    applyVisibility(form);
    form.addEventListener("change", function (event) {
      var name = event.target && event.target.name;
      if (name === "auth.type" || name === "oauth2.grant_type") {
        applyVisibility(form);
      }
    });
  }

  function setUpCopy(button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    var status = button.closest(".field").querySelector(".copied");
    button.hidden = false;
    button.addEventListener("click", function () {
      var done = function () { if (status) { status.textContent = "Copied."; } };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(target.value).then(done, function () { target.select(); });
      } else {
        target.select();
        try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.spec-form").forEach(setUpForm);
    document.querySelectorAll("button[data-copy]").forEach(setUpCopy);
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
  });
})();
