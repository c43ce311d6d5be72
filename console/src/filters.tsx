/**
 * The review grid's filters, kept in the URL's query string under the
 * listing API's own names (`user_id`, `room_id`, `origin`, `media_type`,
 * `min_size`, `max_size`, `quarantined`, `protected`), so a filtered view
 * is a link.
 */
import { useState } from "preact/hooks";
import { parseSize } from "./format";

export const FILTER_NAMES = [
  "user_id",
  "room_id",
  "origin",
  "media_type",
  "min_size",
  "max_size",
  "quarantined",
  "protected",
] as const;

export function Filters(props: {
  query: URLSearchParams;
  onApply: (query: URLSearchParams) => void;
}) {
  const initial = (name: string) => props.query.get(name) ?? "";
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries(FILTER_NAMES.map((name) => [name, initial(name)])),
  );
  const [error, setError] = useState<string | undefined>();
  const set = (name: string) => (event: Event) =>
    setValues({ ...values, [name]: (event.currentTarget as HTMLInputElement).value });

  const submit = (event: Event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const name of FILTER_NAMES) {
      let value = (values[name] ?? "").trim();
      if (value === "") continue;
      if (name === "min_size" || name === "max_size") {
        const bytes = parseSize(value);
        if (bytes === undefined) {
          setError(`${name === "min_size" ? "Smallest" : "Largest"} size: a size such as 5M`);
          return;
        }
        value = String(bytes);
      }
      query.set(name, value);
    }
    setError(undefined);
    props.onApply(query);
  };

  const text = (name: string, label: string, placeholder: string) => (
    <div class="field">
      <label for={`f-${name}`}>{label}</label>
      <input id={`f-${name}`} value={values[name]} placeholder={placeholder} onInput={set(name)} />
    </div>
  );
  const choice = (name: string, label: string, options: [string, string][]) => (
    <div class="field">
      <label for={`f-${name}`}>{label}</label>
      <select id={`f-${name}`} value={values[name]} onChange={set(name)}>
        {options.map(([value, text]) => (
          <option key={value} value={value}>
            {text}
          </option>
        ))}
      </select>
    </div>
  );
  return (
    <form class="filters" aria-label="Filters" onSubmit={submit}>
      {text("user_id", "User", "@alice:example.org")}
      {text("room_id", "Room", "!room:example.org")}
      {text("origin", "Origin", "local or a server name")}
      {text("media_type", "Type", "image/ or image/png")}
      {text("min_size", "Smallest", "e.g. 100K")}
      {text("max_size", "Largest", "e.g. 5M")}
      {choice("quarantined", "Quarantine", [
        ["", "any"],
        ["true", "quarantined"],
        ["false", "not quarantined"],
      ])}
      {choice("protected", "Protection", [
        ["", "any"],
        ["true", "protected"],
        ["false", "not protected"],
      ])}
      <div class="field field-buttons">
        <button type="submit" class="primary">
          Apply filters
        </button>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
