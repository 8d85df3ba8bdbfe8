// The dashboard: sign in with an API key (it becomes a session cookie), then the team's
// sessions. Rendered with Preact's h(); no inline script or style anywhere (the page's CSP).
import { h, render } from "preact";
import { useEffect, useState } from "preact/hooks";

import { ApiError, Me, SessionRow, me, sessions, signIn, signOut } from "./api";

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

function Sessions(props: { who: Me; onOut: () => void }) {
  const [rows, setRows] = useState<SessionRow[] | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    sessions().then(setRows, (err) => setError(err instanceof ApiError ? err.message : String(err)));
  }, []);
  const out = async () => {
    await signOut();
    props.onOut();
  };
  return h(
    "section",
    null,
    h(
      "header",
      null,
      h("h1", null, "Sessions"),
      h(
        "span",
        { class: "who" },
        `${props.who.key_name} (${props.who.role}, team ${props.who.team_id}) `,
        h("button", { class: "quiet", onClick: out }, "Sign out"),
      ),
    ),
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

function App() {
  const [who, setWho] = useState<Me | null | undefined>(undefined);
  useEffect(() => {
    me().then(setWho, () => setWho(null));  // no session: the sign-in form
  }, []);
  if (who === undefined) return h("p", null, "Loading...");
  if (who === null) return h(SignIn, { onIn: setWho });
  return h(Sessions, { who, onOut: () => setWho(null) });
}

render(h(App, null), document.getElementById("app")!);
