// The dashboard's only script: parts marked data-refresh="<ms>" reload themselves from the
// server until the server sends them back without the mark (the delivery is no longer
// pending, the replay has finished); the overview keeps its mark. Pages work without it;
// they just do not update. A hidden tab skips its turns: no load for a page nobody sees.
"use strict";

function refresh(element) {
  const every = parseInt(element.dataset.refresh, 10);
  if (!element.id || !(every > 0)) return;
  setTimeout(async () => {
    if (document.hidden) {
      refresh(element);
      return;
    }
    let fresh = null;
    try {
      const answer = await fetch(window.location.href, {credentials: "same-origin"});
      if (answer.ok) {
        const page = new DOMParser().parseFromString(await answer.text(), "text/html");
        fresh = page.getElementById(element.id);
      }
    } catch (problem) {
      // The server may be restarting: try again at the next tick.
    }
    if (fresh === null) {
      refresh(element);
      return;
    }
    const replacement = document.importNode(fresh, true);
    element.replaceWith(replacement);
    refresh(replacement);
  }, every);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(refresh);
});
