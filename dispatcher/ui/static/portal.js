// The portal's gate: a link is /portal#<secret>. The fragment never reaches a server; this
// script takes it out of the address bar at once, trades it for an HttpOnly session cookie
// (POST /portal/session), and loads the page again, now with the session.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const gate = document.getElementById("gate");
  const token = window.location.hash.slice(1);
  if (gate === null || !token) return;
  history.replaceState(null, "", window.location.pathname + window.location.search);
  const opening = document.getElementById("opening");
  const message = document.getElementById("gate-message");
  opening.hidden = false;
  message.hidden = true;
  let answer = null;
  try {
    answer = await fetch(gate.dataset.exchange, {
      method: "POST", credentials: "same-origin", referrerPolicy: "no-referrer",
      headers: {"content-type": "application/json"}, body: JSON.stringify({token}),
    });
  } catch (problem) {
    answer = null;
  }
  if (answer !== null && answer.ok) {
    window.location.replace(window.location.pathname + window.location.search);
    return;
  }
  opening.hidden = true;
  message.hidden = false;
  if (answer === null) message.textContent = "The portal could not be reached. Try the link again.";
});
