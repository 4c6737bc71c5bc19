// The dashboard's only script: live updates (server-sent events) and operator actions.
// Everything shown comes from the server's escaped HTML or is set with textContent.
"use strict";

(function () {
  const tokenInput = document.getElementById("token");
  if (tokenInput) {
    tokenInput.value = sessionStorage.getItem("sagas-token") || "";
    tokenInput.addEventListener("input", () => sessionStorage.setItem("sagas-token", tokenInput.value));
  }

  function say(text, ok) {
    const target = document.getElementById("action-result") || document.getElementById("toast");
    target.textContent = text;
    target.className = ok ? "ok" : "bad";
  }

  // -- live updates: re-render the [data-live] sections from the same URL ----------
  let pending = null;
  async function refresh() {
    pending = null;
    const response = await fetch(window.location.href, { headers: { "X-Live": "1" } });
    if (!response.ok) return;
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const fresh of doc.querySelectorAll("[data-live][id]")) {
      const current = document.getElementById(fresh.id);
      if (current) current.replaceWith(document.importNode(fresh, true));
    }
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  }
  const live = document.getElementById("live");
  if (window.EventSource) {
    const source = new EventSource("/api/events");
    source.addEventListener("hello", () => live && live.classList.add("on"));
    source.addEventListener("changed", () => {
      if (!pending) pending = setTimeout(refresh, 300);
    });
    source.onerror = () => live && live.classList.remove("on");
  }

  // -- actions ------------------------------------------------------------------------
  async function post(url, body) {
    const token = tokenInput ? tokenInput.value : "";
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
      body: JSON.stringify(body),
    });
    let doc = {};
    try { doc = await response.json(); } catch (e) { doc = {}; }
    return { status: response.status, doc: doc };
  }

  async function act(action) {
    const panel = document.querySelector("section.actions[data-saga]");
    if (!panel) return;
    const body = {
      saga: panel.dataset.saga,
      saga_id: panel.dataset.sagaId,
      action: action,
      reason: (document.getElementById("reason") || {}).value || "",
    };
    if (action === "skip") {
      body.step = document.getElementById("skip-step").value;
      const result = document.getElementById("skip-result").value.trim();
      if (result) {
        try { body.result = JSON.parse(result); } catch (e) { say("the reply is not JSON", false); return; }
      }
    }
    say(action + ": sent, waiting for the engine…", true);
    const { status, doc } = await post("/api/actions", body);
    if (status !== 200) {
      say(action + " refused (" + status + "): " + (doc.detail || ""), false);
    } else if (doc.status === "pending") {
      say(action + ": not applied in time — is an engine running?", false);
    } else {
      say(action + " " + doc.status + ": " + (doc.note || ""), doc.status === "applied");
      refresh();
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.act");
    if (button && button.dataset.action !== "skip") {
      event.preventDefault();
      act(button.dataset.action);
    }
    const replay = event.target.closest("button.replay");
    if (replay) {
      const id = replay.closest("[data-letter]").dataset.letter;
      post("/api/dlq/" + encodeURIComponent(id) + "/replay", {}).then(({ status, doc }) =>
        say(status === 200 ? "replayed to " + doc.topic : "refused (" + status + "): " + (doc.detail || ""), status === 200));
    }
  });
  document.addEventListener("submit", (event) => {
    if (event.target.id === "skip-form") {
      event.preventDefault();
      act("skip");
    }
  });
})();
