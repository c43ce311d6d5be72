/**
 * The sign-in screen: user name and password (the standalone shape, where
 * mxcd has the accounts) or an access token pasted from the homeserver (the
 * attached shape; also offered standalone). Tokens of non-admins are
 * refused with a message saying so.
 */
import { useState } from "preact/hooks";
import { messageOf } from "./api";
import {
  type ConsoleSettings,
  LoginRefused,
  openSession,
  passwordLogin,
  type Session,
} from "./session";

export function Login(props: {
  settings: ConsoleSettings;
  notice?: string;
  onSession: (session: Session) => void;
}) {
  const standalone = props.settings.mode === "standalone";
  const [error, setError] = useState<string | undefined>(props.notice);
  const [busy, setBusy] = useState(false);
  const [user, setUser] = useState("");
  const [password, setPassword] = useState("");
  const [token, setToken] = useState("");

  const attempt = async (open: () => Promise<Session>) => {
    setBusy(true);
    setError(undefined);
    try {
      props.onSession(await open());
    } catch (e) {
      setError(e instanceof LoginRefused ? e.message : messageOf(e));
    } finally {
      setBusy(false);
    }
  };

  const tokenForm = (
    <form
      class="login-form"
      onSubmit={(event) => {
        event.preventDefault();
        void attempt(() => openSession(token.trim(), false));
      }}
    >
      <label for="token">Admin access token</label>
      <input
        id="token"
        type="password"
        autocomplete="off"
        value={token}
        onInput={(e) => setToken(e.currentTarget.value)}
        required
      />
      <button type="submit" class="primary" disabled={busy}>
        Use this token
      </button>
    </form>
  );

  return (
    <main class="login" id="main">
      <h1>mxcd moderation console</h1>
      <p>{props.settings.server_name}</p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {standalone ? (
        <>
          <form
            class="login-form"
            onSubmit={(event) => {
              event.preventDefault();
              void attempt(() => passwordLogin(user.trim(), password));
            }}
          >
            <label for="user">User name</label>
            <input
              id="user"
              autocomplete="username"
              value={user}
              onInput={(e) => setUser(e.currentTarget.value)}
              required
            />
            <label for="password">Password</label>
            <input
              id="password"
              type="password"
              autocomplete="current-password"
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
              required
            />
            <button type="submit" class="primary" disabled={busy}>
              Sign in
            </button>
          </form>
          <details>
            <summary>Use an access token instead</summary>
            {tokenForm}
          </details>
        </>
      ) : (
        <>
          <p>Paste the access token of a server admin of the homeserver.</p>
          {tokenForm}
        </>
      )}
    </main>
  );
}
