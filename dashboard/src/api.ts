// The API, from the page: same origin, the session cookie, and the CSRF token on writes.
export interface Me {
  key_id: string;
  key_name: string;
  team_id: string;
  role: string;
  csrf_token: string | null;
}

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

let csrf: string | null = null;

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (r.status === 204) return undefined as T;
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const e = data?.error ?? {};
    throw new ApiError(r.status, e.code ?? "error", e.message ?? `HTTP ${r.status}`);
  }
  return data as T;
}

export async function me(): Promise<Me> {
  const m = await call<Me>("GET", "/api/me");
  csrf = m.csrf_token;
  return m;
}

export async function signIn(key: string): Promise<Me> {
  const m = await call<Me>("POST", "/api/auth/login", { key });
  csrf = m.csrf_token;
  return m;
}

export async function signOut(): Promise<void> {
  await call<void>("POST", "/api/auth/logout");
  csrf = null;
}

export interface SessionRow {
  id: string;
  agent_id: string;
  status: string;
  created_at: number;
}

export async function sessions(): Promise<SessionRow[]> {
  const page = await call<{ sessions: SessionRow[] }>("GET", "/api/sessions?limit=100");
  return page.sessions;
}

export interface Agent {
  id: string;
  name: string;
  harness: string;
}

export async function agents(): Promise<Agent[]> {
  const page = await call<{ agents: Agent[] }>("GET", "/api/agents?limit=100");
  return page.agents;
}

export async function createAgent(name: string, harness: string): Promise<Agent> {
  return call<Agent>("POST", "/api/agents", { name, harness });
}

export async function deleteAgent(id: string): Promise<void> {
  await call<void>("DELETE", `/api/agents/${encodeURIComponent(id)}`);
}

// The harnesses this server loaded (the agent form's picker).
export async function harnesses(): Promise<string[]> {
  const r = await call<{ plugins: { kind: string; name: string }[] }>("GET", "/api/plugins");
  return r.plugins.filter((p) => p.kind === "harness").map((p) => p.name);
}
