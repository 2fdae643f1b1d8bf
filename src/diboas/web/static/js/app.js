// diBoaS pages work without this file; it only smooths a few edges.
// Loaded as an external script (the Content-Security-Policy allows no inline script).
"use strict";

(function () {
  // A form is sent once: the submit button is disabled while the page changes. (The server
  // also refuses a second identical movement through the form's idempotency key.)
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    var buttons = form.querySelectorAll("button[type=submit], button:not([type])");
    window.setTimeout(function () {
      buttons.forEach(function (button) {
        button.disabled = true;
        button.setAttribute("aria-busy", "true");
      });
    }, 0);
  });

  // A fee quote is held for a limited time: count it down, and say when it has run out
  // (confirming then is refused by the server with quote_expired; "Change" quotes again).
  var countdown = document.querySelector("[data-quote-countdown]");
  if (countdown) {
    var left = parseInt(countdown.getAttribute("data-seconds-left"), 10);
    var tick = function () {
      if (left <= 0) {
        countdown.textContent = "This fee quote has expired. Choose Change to get a new one.";
        countdown.className = "alert warning";
        return;
      }
      countdown.textContent = "This fee is held for you for " + left + " more seconds.";
      left -= 1;
      window.setTimeout(tick, 1000);
    };
    tick();
  }

  // A transaction still pending or processing: ask for its status every two seconds and
  // update the page in place (an aria-live region announces the change).
  var live = document.querySelector("[data-status-url]");
  if (live) {
    var url = live.getAttribute("data-status-url");
    var settled = ["completed", "failed", "reversed"];
    var poll = function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (body) {
          if (!body) return;
          if (body.status !== live.getAttribute("data-status")) {
            live.setAttribute("data-status", body.status);
            live.textContent = body.status;
            live.className = "badge " + body.status;
          }
          if (settled.indexOf(body.status) === -1) {
            window.setTimeout(poll, 2000);
          } else if (body.failure_reason) {
            var reason = document.getElementById("failure-reason");
            if (reason) reason.textContent = body.failure_reason;
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    };
    if (settled.indexOf(live.getAttribute("data-status")) === -1) window.setTimeout(poll, 2000);
  }

  // Live updates: the server pushes "balance" and "transaction" hints over a WebSocket
  // (signed in by the session cookie). A balance hint refreshes the balance part of the page
  // from the server; a transaction hint updates a status shown on the page. If the socket is
  // lost, it is opened again a little later; pages stay correct without it (reload, poll).
  var balance = document.querySelector("[data-live-balance]");
  if ((balance || live) && "WebSocket" in window) {
    var refreshBalance = function () {
      fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (!html) return;
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live-balance");
          if (fresh && balance) balance.innerHTML = fresh.innerHTML;
        });
    };
    var connect = function (delay) {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var socket = new WebSocket(scheme + window.location.host + "/api/v1/ws");
      socket.addEventListener("message", function (message) {
        var event = JSON.parse(message.data);
        if (event.type === "balance" && balance) refreshBalance();
        if (event.type === "transaction" && live && live.getAttribute("data-status-url").indexOf(event.transaction.id) !== -1) {
          live.setAttribute("data-status", event.transaction.status);
          live.textContent = event.transaction.status;
          live.className = "badge " + event.transaction.status;
        }
        if (event.type === "ready") document.documentElement.setAttribute("data-live", "connected");
      });
      socket.addEventListener("close", function (closed) {
        document.documentElement.setAttribute("data-live", "closed");
        if (closed.code !== 4401) window.setTimeout(function () { connect(Math.min(delay * 2, 30000)); }, delay);
      });
    };
    connect(1000);
  }

  // The installable app: a service worker keeps an offline page (consumer/offline.py). The
  // last balance seen on the dashboard stays on this device so that page can show it, marked
  // as not current; signing out forgets it.
  var LAST = "diboas:last-balance";
  if ("serviceWorker" in navigator && window.location.pathname.indexOf("/app") === 0) {
    navigator.serviceWorker.register("/app/sw.js", { scope: "/app" }).catch(function () {});
  }
  var remember = function () {
    var total = document.querySelector("[data-testid=total-usd]");
    var asOf = document.querySelector("[data-testid=as-of]");
    if (total && window.localStorage) {
      window.localStorage.setItem(LAST, JSON.stringify({
        total: total.textContent.trim(), as_of: asOf ? asOf.textContent.trim() : ""
      }));
    }
  };
  if (balance) {
    remember();
    new MutationObserver(remember).observe(balance, { childList: true, subtree: true });
  }
  var offline = document.querySelector("[data-offline-balance]");
  if (offline && window.localStorage) {
    var last = JSON.parse(window.localStorage.getItem(LAST) || "null");
    if (last) {
      offline.querySelector("[data-testid=last-known-total]").textContent = last.total;
      offline.querySelector("[data-testid=last-known-as-of]").textContent = last.as_of;
      offline.hidden = false;
    }
  }
  if (window.location.pathname === "/app/login" && window.localStorage) {
    window.localStorage.removeItem(LAST);
  }
})();
