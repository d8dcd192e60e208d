/** Errors the Switchboard client ends a call with. */

/** How a call failed: Switchboard answered with an error status, the connection failed, the attempt timed out, or the caller aborted. */
export type SwitchboardErrorKind = 'http' | 'network' | 'timeout' | 'aborted';

/** Switchboard's JSON error body: `{error, message, field?, reason?}`. */
export interface ErrorBody {
  error: string;
  message: string;
  field?: string;
  reason?: string;
  [key: string]: unknown;
}

export interface SwitchboardErrorInit {
  kind: SwitchboardErrorKind;
  method: string;
  path: string;
  attempts: number;
  status?: number;
  code: string;
  field?: string;
  reason?: string;
  body?: unknown;
  cause?: unknown;
}

/**
 * A call that did not succeed. `code` is Switchboard's stable `error` code for HTTP errors
 * (`bad_request`, `unauthorized`, `unknown_server`, `not_found`, `no_capacity`, ...), the
 * connection error's code for network errors (`ECONNREFUSED`, `UND_ERR_SOCKET`, ...), `timeout`
 * or `aborted`. `field` names the refused input (`body.workers`, `headers.authorization`).
 */
export class SwitchboardError extends Error {
  readonly kind: SwitchboardErrorKind;
  /** HTTP status; undefined when no answer came. */
  readonly status: number | undefined;
  /** Switchboard's `error` code, or the network error's code, `timeout`, `aborted`. */
  readonly code: string;
  readonly field: string | undefined;
  readonly reason: string | undefined;
  /** The parsed answer body (HTTP errors). */
  readonly body: unknown;
  readonly method: string;
  readonly path: string;
  /** Attempts made, retries included. */
  readonly attempts: number;

  constructor(message: string, init: SwitchboardErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'SwitchboardError';
    this.kind = init.kind;
    this.status = init.status;
    this.code = init.code;
    this.field = init.field;
    this.reason = init.reason;
    this.body = init.body;
    this.method = init.method;
    this.path = init.path;
    this.attempts = init.attempts;
  }

  /** A 4xx: the request itself was refused; sending it again unchanged will not help. */
  get clientError(): boolean {
    return this.status !== undefined && this.status >= 400 && this.status < 500 && this.status !== 429;
  }
}

/**
 * Switchboard does not know this server (404 `unknown_server` on a heartbeat): it restarted with
 * an empty store, its Redis was flushed, or an operator deregistered the server. Register again.
 */
export class UnknownServerError extends SwitchboardError {
  constructor(message: string, init: SwitchboardErrorInit) {
    super(message, init);
    this.name = 'UnknownServerError';
  }
}

export function isSwitchboardError(err: unknown): err is SwitchboardError {
  return err instanceof SwitchboardError;
}

export function isUnknownServer(err: unknown): err is UnknownServerError {
  return err instanceof UnknownServerError;
}
