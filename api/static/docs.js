// Starts Swagger UI over the service's OpenAPI document. A file, not an inline script: the
// Content-Security-Policy (api/middleware.py) allows scripts from this origin only.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
