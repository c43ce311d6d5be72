/**
 * A confirmation dialog (native `<dialog>`, modal: focus stays inside and
 * Escape cancels). `useConfirm()` gives `ask(...)`, a promise of the answer.
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
