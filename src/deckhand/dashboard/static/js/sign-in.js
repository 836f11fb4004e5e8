// The sign-in form: the key goes to this server once, in a POST body; what
// comes back is an HttpOnly session cookie the page never sees.
const form = document.getElementById("sign-in");
const error = document.getElementById("error");
const input = document.getElementById("key");
input.focus();

function next() {
  const n = new URLSearchParams(location.search).get("next") || "/";
  return n.startsWith("/") && !n.startsWith("//") && !n.includes("\\") ? n : "/";
}

form.addEventListener("submit", async ev => {
  ev.preventDefault();
  error.hidden = true;
  const key = input.value.trim();
  if (!key) { error.textContent = "Paste an API key."; error.hidden = false; return; }
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const r = await fetch("/dashboard/session", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Deckhand-Dashboard": "1" },
      body: JSON.stringify({ key }),
    });
    if (r.ok) { input.value = ""; location.assign(next()); return; }
    const body = await r.json().catch(() => ({}));
    error.textContent = (body.error && body.error.message) || `Sign-in failed (HTTP ${r.status}).`;
    error.hidden = false;
    input.select();
  } finally {
    button.disabled = false;
  }
});
