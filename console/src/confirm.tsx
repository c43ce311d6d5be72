/**
 * A confirmation dialog (native `<dialog>`, modal: focus stays inside and
 * Escape cancels). `useConfirm()` gives `ask(...)`, a promise of the answer.
 * Focus goes to the confirm button when it opens and back to what had it
 * (the button or tile that asked) when it closes.
 */
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

interface Question {
  title: string;
  body: ComponentChildren;
  confirm: string;
  danger: boolean;
  resolve: (yes: boolean) => void;
}

export function useConfirm() {
  const [question, setQuestion] = useState<Question | undefined>();
  const ask = (title: string, body: ComponentChildren, confirm: string, danger = false) =>
    new Promise<boolean>((resolve) => setQuestion({ title, body, confirm, danger, resolve }));
  const answer = (yes: boolean) => {
    question?.resolve(yes);
    setQuestion(undefined);
  };
  const dialog = question ? <ConfirmDialog question={question} answer={answer} /> : null;
  return { ask, dialog, open: question !== undefined };
}

function ConfirmDialog(props: { question: Question; answer: (yes: boolean) => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const confirmRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const before = document.activeElement as HTMLElement | null;
    dialog.showModal();
    confirmRef.current?.focus();
    return () => {
      if (dialog.open) dialog.close();
      before?.focus();
    };
  }, []);
  const { question, answer } = props;
  return (
    <dialog
      ref={ref}
      class="confirm"
      aria-labelledby="confirm-title"
      onCancel={(event) => {
        event.preventDefault();
        answer(false);
      }}
      onKeyDown={trapTab}
    >
      <h2 id="confirm-title">{question.title}</h2>
      <div class="confirm-body">{question.body}</div>
      <div class="confirm-buttons">
        <button type="button" onClick={() => answer(false)}>
          Cancel
        </button>
        <button
          type="button"
          ref={confirmRef}
          class={question.danger ? "danger" : "primary"}
          onClick={() => answer(true)}
        >
          {question.confirm}
        </button>
      </div>
    </dialog>
  );
}

/**
 * Tab and Shift+Tab wrap around inside the dialog. A modal `<dialog>` makes
 * the page behind it inert, but the browser may still move focus out to its
 * own toolbar; wrapping keeps a keyboard user in the question.
 */
function trapTab(event: KeyboardEvent): void {
  if (event.key !== "Tab") return;
  const dialog = event.currentTarget as HTMLDialogElement;
  const stops = [...dialog.querySelectorAll<HTMLElement>("button, [href], input, select")].filter(
    (el) => !el.hasAttribute("disabled"),
  );
  const first = stops[0];
  const last = stops[stops.length - 1];
  if (!first || !last) return;
  if (event.shiftKey && document.activeElement === first) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && document.activeElement === last) {
    event.preventDefault();
    first.focus();
  }
}
