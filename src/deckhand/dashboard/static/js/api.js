// The /v1 API with the session cookie: the CSRF token on every mutation, a
// lapsed session back to the sign-in page, errors as their envelope's message.
const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "HTTP_" + status;
  }
}

export function toSignIn() {
  const next = location.pathname + location.search;
  location.assign("/sign-in?next=" + encodeURIComponent(next));
}

export async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrf();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) { toSignIn(); throw new ApiError(401, null); }
  if (raw) return r;
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

// Every page of a `{data, has_more}` list, following `after` (the last item's key).
export async function listAll(path, keyOf, { limit = 100, param = "after", start = null } = {}) {
  const out = [];
  let after = start;
  for (;;) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api(`${path}${sep}limit=${limit}` + (after !== null ? `&${param}=${encodeURIComponent(after)}` : ""));
    out.push(...page.data);
    if (!page.has_more || !page.data.length) return out;
    after = keyOf(page.data[page.data.length - 1]);
  }
}

// An SSE stream (EventSource sends the session cookie; GET needs no CSRF token).
export function stream(path, handlers, onState = () => {}) {
  const es = new EventSource(path, { withCredentials: true });
  es.onopen = () => onState(true);
  es.onerror = () => {
    onState(false);
    // A refused stream (not 200) is closed for good: a lapsed session goes to sign-in.
    if (es.readyState === EventSource.CLOSED) api("/v1/runs?limit=1").catch(() => {});
  };
  for (const [type, fn] of Object.entries(handlers)) {
    es.addEventListener(type, ev => fn(JSON.parse(ev.data), ev));
  }
  return es;
}

export async function signOut() {
  await fetch("/dashboard/sign-out", {
    method: "POST", credentials: "same-origin",
    headers: { "X-CSRF-Token": csrf(), "X-Deckhand-Dashboard": "1" },
  });
  location.assign("/sign-in");
}
