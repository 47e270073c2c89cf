// Starts ReDoc on the API reference page (templates/drf_spectacular/redoc.html). A static file
// rather than an inline script: the Content-Security-Policy allows scripts from the portal only.
(function () {
  "use strict";
  var container = document.getElementById("redoc-container");
  window.Redoc.init(container.getAttribute("data-schema-url"),
    JSON.parse(container.getAttribute("data-settings")), container);
})();
