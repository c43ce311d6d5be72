/** Entry point of the moderation console (docs/console.md). */
import { render } from "preact";
import { App, startBoot } from "./app";
import "./styles.css";

// Start-up's requests leave before the first render (a render's effects wait for a frame).
const boot = startBoot();
render(<App boot={boot} />, document.getElementById("app")!);
