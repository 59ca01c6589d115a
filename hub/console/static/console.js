// The console's shared script (CSP: scripts from the hub only, none inline).
// consoleFetch: fetch with the session's CSRF token, which every change needs.
// consoleEvents: an EventSource that reconnects, and goes to the login page once the
// session has ended (the stream then answers 401, which EventSource reports as an error).
"use strict";

function consoleCsrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

async function consoleFetch(url, options = {}) {
  const headers = new Headers(options.headers || {});
  headers.set("X-CSRF-Token", consoleCsrfToken());
  if (!headers.has("Accept")) headers.set("Accept", "application/json");
  const response = await fetch(url, { credentials: "same-origin", ...options, headers });
  if (response.status === 401) {
    window.location.assign("/console/login?next=" + encodeURIComponent(window.location.pathname));
  }
  return response;
}

function consoleEvents(url, onMessage, { eventNames = [], retryMs = 2000 } = {}) {
  let source = null;
  let stopped = false;
  function open() {
    source = new EventSource(url);
    source.onmessage = (event) => onMessage(JSON.parse(event.data), event);
    for (const name of eventNames) {
      source.addEventListener(name, (event) => onMessage(JSON.parse(event.data), event));
    }
    source.onerror = async () => {
      source.close();
      if (stopped) return;
      const probe = await fetch("/console/api/session", { headers: { Accept: "application/json" } })
        .catch(() => null);
      if (probe && probe.status === 401) {
        window.location.assign("/console/login?next=" + encodeURIComponent(window.location.pathname));
        return;
      }
      setTimeout(open, retryMs);
    };
  }
  open();
  return { close() { stopped = true; if (source) source.close(); } };
}

window.consoleFetch = consoleFetch;
window.consoleEvents = consoleEvents;
window.consoleCsrfToken = consoleCsrfToken;
