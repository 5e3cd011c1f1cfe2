/*
 * AuthBridge Connect: let your end user connect an account from your page, in a popup (no iframe).
 *
 *   <script src="https://authbridge.example/connect.js"></script>
 *   AuthBridgeConnect.open(connectUrl, { onEvent: function (event) { ... } });
 *
 * connectUrl comes from your backend (POST /connect/sessions with a key of scope "connect").
 * onEvent receives {type: "connected" | "error" | "cancelled", connectionId, integration} once,
 * or {type: "closed"} when the window was closed first. When the browser blocks popups, the page
 * itself goes to connectUrl and comes back to the session's return_to with ?connection_id=&status=.
 * No dependencies; works in every browser that runs ES5.
 */
(function (root) {
  "use strict";

  function open(connectUrl, options) {
    options = options || {};
    var onEvent = typeof options.onEvent === "function" ? options.onEvent : function () {};
    var origin = new URL(connectUrl, window.location.href).origin;
    var separator = connectUrl.indexOf("?") === -1 ? "?" : "&";
    var width = 520, height = 720;
    var left = Math.max(0, (window.screenX || 0) + ((window.outerWidth || width) - width) / 2);
    var top = Math.max(0, (window.screenY || 0) + ((window.outerHeight || height) - height) / 2);
    var popup = null;
    try {
      popup = window.open(
        connectUrl + separator + "mode=popup",
        "authbridge-connect",
        "popup=yes,width=" + width + ",height=" + height + ",left=" + left + ",top=" + top
      );
    } catch (e) {
      popup = null;
    }
    if (!popup) {
      window.location.assign(connectUrl);  // popups blocked (or a webview): a full-page visit instead
      return { close: function () {} };
    }
    var finished = false;

    function finish(event) {
      if (finished) { return; }
      finished = true;
      window.removeEventListener("message", onMessage);
      window.clearInterval(timer);
      onEvent(event);
    }

    function onMessage(event) {
      if (event.origin !== origin || event.source !== popup) { return; }
      var data = event.data || {};
      if (data.type !== "authbridge:connect") { return; }
      finish({ type: data.status, connectionId: data.connection_id, integration: data.integration });
    }

    window.addEventListener("message", onMessage);
    var timer = window.setInterval(function () {
      if (popup.closed) { finish({ type: "closed" }); }
    }, 400);
    return {
      close: function () {
        if (!popup.closed) { popup.close(); }
      }
    };
  }

  root.AuthBridgeConnect = { open: open };
})(window);
