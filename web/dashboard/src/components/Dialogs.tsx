import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

export type DialogRequest =
  | { type: 'confirm'; title: string; body: ComponentChildren; confirmLabel: string; danger: boolean; resolve: (ok: boolean) => void }
  | { type: 'token'; reason: 'missing' | 'wrong'; resolve: (token: string | null) => void };

/** A native modal <dialog>: focus trapped, Escape cancels. */
function Modal(props: { name: string; onCancel: () => void; children: ComponentChildren; labelledBy: string }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.open && d.close();
  }, []);
  return (
    <dialog
      ref={ref}
      class="modal"
      data-dialog={props.name}
      aria-labelledby={props.labelledBy}
      onCancel={(e) => {
        e.preventDefault();
        props.onCancel();
      }}
    >
      {props.children}
    </dialog>
  );
}

export function DialogHost({ request, done }: { request: DialogRequest | null; done: () => void }) {
  if (!request) return null;
  if (request.type === 'confirm') {
    const answer = (ok: boolean) => {
      done();
      request.resolve(ok);
    };
    return (
      <Modal name="confirm" labelledBy="confirm-title" onCancel={() => answer(false)}>
        <h2 id="confirm-title">{request.title}</h2>
        <div class="modal-body">{request.body}</div>
        <div class="modal-actions">
          <button type="button" class="btn" data-confirm="no" onClick={() => answer(false)}>
            Cancel
          </button>
          <button type="button" class={`btn ${request.danger ? 'btn-danger' : 'btn-primary'}`} data-confirm="yes" onClick={() => answer(true)} autofocus>
            {request.confirmLabel}
          </button>
        </div>
      </Modal>
    );
  }
  return <TokenDialog reason={request.reason} answer={(t) => (done(), request.resolve(t))} />;
}

function TokenDialog({ reason, answer }: { reason: 'missing' | 'wrong'; answer: (token: string | null) => void }) {
  const [value, setValue] = useState('');
  return (
    <Modal name="token" labelledBy="token-title" onCancel={() => answer(null)}>
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          if (value.trim()) answer(value.trim());
        }}
      >
        <h2 id="token-title">{reason === 'wrong' ? 'Token refused' : 'Token needed'}</h2>
        <div class="modal-body">
          <p>
            {reason === 'wrong'
              ? 'Switchboard refused that token. Enter the AUTH_TOKEN again.'
              : 'This Switchboard needs its AUTH_TOKEN for drain and deregister. It is kept for this tab only.'}
          </p>
          <label class="field">
            <span>Bearer token</span>
            <input
              type="password"
              name="token"
              autocomplete="off"
              spellcheck={false}
              value={value}
              onInput={(e) => setValue((e.target as HTMLInputElement).value)}
              autofocus
            />
          </label>
        </div>
        <div class="modal-actions">
          <button type="button" class="btn" data-confirm="no" onClick={() => answer(null)}>
            Cancel
          </button>
          <button type="submit" class="btn btn-primary" data-confirm="yes" disabled={!value.trim()}>
            Use token
          </button>
        </div>
      </form>
    </Modal>
  );
}
