/**
 * Errors a request can end in, with the HTTP status and the stable `error` code the API answers.
 * Capability modules throw these; the API turns them into JSON bodies and never into a 5xx crash.
 */
export class AppError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const notFound = (what: string, field: string, id: string) =>
  new AppError(404, 'not_found', `${what} "${id}" is not known`, { field, reason: 'not found' });
