// The dashboard: sign in with an API key (it becomes a session cookie), then the team's
// sessions. Rendered with Preact's h(); no inline script or style anywhere (the page's CSP).
import { h, render } from "preact";
import { useEffect, useState } from "preact/hooks";

import {
  Agent,
  ApiError,
  Me,
  SessionRow,
  agents,
  createAgent,
  deleteAgent,
  harnesses,
  me,
  sessions,
  signIn,
  signOut,
} from "./api";

const message = (err: unknown) => (err instanceof ApiError ? err.message : String(err));
// Viewers read; members and above write (the API refuses them anyway: this only hides controls).
const writes = (who: Me) => who.role !== "viewer";

function SignIn(props: { onIn: (m: Me) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState("");
  const submit = async (e: Event) => {
    e.preventDefault();
    setError("");
    try {
      props.onIn(await signIn(key.trim()));
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  return h(
    "form",
    { class: "signin", onSubmit: submit },
    h("h1", null, "Sign in to Paddock"),
    h("label", { for: "key" }, "API key"),
    h("input", {
      id: "key",
      name: "key",
      type: "password",
      autocomplete: "off",
      value: key,
      onInput: (e: Event) => setKey((e.target as HTMLInputElement).value),
    }),
    error ? h("p", { class: "error", role: "alert" }, error) : null,
    h("button", { type: "submit" }, "Sign in"),
  );
}

function Sessions() {
  const [rows, setRows] = useState<SessionRow[] | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    sessions().then(setRows, (err) => setError(message(err)));
  }, []);
  return h(
    "section",
    null,
    error ? h("p", { class: "error", role: "alert" }, error) : null,
    rows === null
      ? h("p", null, "Loading...")
      : h(
          "table",
          { class: "sessions" },
          h("thead", null, h("tr", null, h("th", null, "Session"), h("th", null, "Agent"), h("th", null, "Status"))),
          h(
            "tbody",
            null,
            rows.map((s) =>
              h(
                "tr",
                { key: s.id, "data-session": s.id },
                h("td", null, s.id),
                h("td", null, s.agent_id),
                h("td", { class: "status" }, s.status),
              ),
            ),
          ),
        ),
  );
}

function Agents(props: { who: Me }) {
  const [rows, setRows] = useState<Agent[] | null>(null);
  const [kinds, setKinds] = useState<string[]>([]);
  const [name, setName] = useState("");
  const [harness, setHarness] = useState("");
  const [error, setError] = useState("");
  const load = () => agents().then(setRows, (err) => setError(message(err)));
  useEffect(() => {
    load();
    harnesses().then((k) => {
      setKinds(k);
      setHarness(k[0] ?? "");
    }, (err) => setError(message(err)));
  }, []);
  const create = async (e: Event) => {
    e.preventDefault();
    setError("");
    try {
      await createAgent(name, harness);
      setName("");
      await load();
    } catch (err) {
      setError(message(err));  // the API's own words, next to the form
    }
  };
  const remove = async (id: string) => {
    setError("");
    try {
      await deleteAgent(id);
      await load();
    } catch (err) {
      setError(message(err));
    }
  };
  const canWrite = writes(props.who);
  return h(
    "section",
    null,
    canWrite
      ? h(
          "form",
          { class: "agent-form", onSubmit: create },
          h("label", { for: "agent-name" }, "Name"),
          h("input", {
            id: "agent-name",
            value: name,
            onInput: (e: Event) => setName((e.target as HTMLInputElement).value),
          }),
          h("label", { for: "agent-harness" }, "Harness"),
          h(
            "select",
            {
              id: "agent-harness",
              value: harness,
              onChange: (e: Event) => setHarness((e.target as HTMLSelectElement).value),
            },
            kinds.map((k) => h("option", { key: k, value: k }, k)),
          ),
          h("button", { type: "submit" }, "Create agent"),
          error ? h("p", { class: "error", role: "alert" }, error) : null,
        )
      : error
        ? h("p", { class: "error", role: "alert" }, error)
        : null,
    rows === null
      ? h("p", null, "Loading...")
      : h(
          "table",
          { class: "agents" },
          h("thead", null, h("tr", null, h("th", null, "Agent"), h("th", null, "Harness"), h("th", null, ""))),
          h(
            "tbody",
            null,
            rows.map((a) =>
              h(
                "tr",
                { key: a.id, "data-agent": a.name },
                h("td", null, a.name),
                h("td", null, a.harness),
                h("td", null, canWrite ? h("button", { class: "quiet", onClick: () => remove(a.id) }, "Delete") : null),
              ),
            ),
          ),
        ),
  );
}

function Shell(props: { who: Me; onOut: () => void }) {
  const [page, setPage] = useState<"sessions" | "agents">("sessions");
  const out = async () => {
    await signOut();
    props.onOut();
  };
  const tab = (id: "sessions" | "agents", label: string) =>
    h("button", { class: page === id ? "tab active" : "tab", onClick: () => setPage(id) }, label);
  return h(
    "div",
    null,
    h(
      "header",
      null,
      h("nav", null, tab("sessions", "Sessions"), tab("agents", "Agents")),
      h(
        "span",
        { class: "who" },
        `${props.who.key_name} (${props.who.role}, team ${props.who.team_id}) `,
        h("button", { class: "quiet", onClick: out }, "Sign out"),
      ),
    ),
    page === "sessions" ? h(Sessions, null) : h(Agents, { who: props.who }),
  );
}

function App() {
  const [who, setWho] = useState<Me | null | undefined>(undefined);
  useEffect(() => {
    me().then(setWho, () => setWho(null));  // no session: the sign-in form
  }, []);
  if (who === undefined) return h("p", null, "Loading...");
  if (who === null) return h(SignIn, { onIn: setWho });
  return h(Shell, { who, onOut: () => setWho(null) });
}

render(h(App, null), document.getElementById("app")!);
