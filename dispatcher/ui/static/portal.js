// The portal's gate: a link is /portal#<secret>. The fragment never reaches a server; this
// script takes it out of the address bar at once, trades it for an HttpOnly session cookie
// (POST /portal/session), and loads the page again, now with that link's session. It runs on
// every portal page, and again when only the fragment changes (a new link opened in a tab
// already on the portal, which browsers do not reload), so a link always opens its session.
"use strict";

const EXCHANGE = "/portal/session";

async function openLink() {
  const token = window.location.hash.slice(1);
  if (!token.startsWith("ptk_")) return;
  history.replaceState(null, "", window.location.pathname + window.location.search);
  const opening = document.getElementById("opening");
  const message = document.getElementById("gate-message");
  if (opening !== null) opening.hidden = false;
  if (message !== null) message.hidden = true;
  let answer = null;
  try {
    answer = await fetch(EXCHANGE, {
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
  if (message === null) {  // a page of the old session: the gate page says why it ended
    window.location.replace("/portal/ended?link=invalid");
    return;
  }
  if (opening !== null) opening.hidden = true;
  message.hidden = false;
  if (answer === null) message.textContent = "The portal could not be reached. Try the link again.";
}

document.addEventListener("DOMContentLoaded", openLink);
window.addEventListener("hashchange", openLink);
