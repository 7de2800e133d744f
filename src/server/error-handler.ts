import type { FastifyError, FastifyInstance } from 'fastify';
import { AppError, ERROR_CODES, type ErrorCode } from './app-error.js';

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** Names the field an ajv error is about, as a dotted path (`variables.FOO`, `timeoutSeconds`). */
function fieldOf(e: AjvError, context: string | undefined): string {
  const base = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const child = (e.params.missingProperty ?? e.params.additionalProperty) as string | undefined;
  const field = [base, child].filter(Boolean).join('.');
  return field || (context === 'body' ? '(body)' : `(${context ?? 'request'})`);
}

function describe(e: AjvError): string {
  if (e.keyword === 'additionalProperties') return 'is not a known field';
  if (e.keyword === 'required') return 'is required';
  return e.message ?? 'is not valid';
}

/** A Postgres unique violation (the only constraint a well-formed request can still hit). */
function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === '23505';
}

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
};

/** Every error leaves as `{ code, message, details? }`; nothing internal reaches the client. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError & { validationContext?: string }, req, reply) => {
    let body: { code: string; message: string; details?: unknown };
    let status: number;
    if (err instanceof AppError) {
      status = err.status;
      body = { code: err.code, message: err.message, ...(err.details !== undefined ? { details: err.details } : {}) };
    } else if (err.validation) {
      const details = (err.validation as AjvError[]).map((e) => ({ field: fieldOf(e, err.validationContext), message: describe(e) }));
      status = 400;
      body = { code: 'validation_failed', message: `Invalid ${err.validationContext ?? 'request'}: ${details.map((d) => `${d.field} ${d.message}`).join('; ')}`, details };
    } else if (err.code && FASTIFY_CODES[err.code]) {
      const code = FASTIFY_CODES[err.code]!;
      status = ERROR_CODES[code][0];
      body = { code, message: code === 'invalid_json' ? `The request body is not valid JSON: ${err.message}` : ERROR_CODES[code][1] };
    } else if (err.statusCode === 429) {
      status = 429;
      body = { code: 'rate_limited', message: ERROR_CODES.rate_limited[1] };
    } else if (isUniqueViolation(err)) {
      status = 409;
      body = { code: 'conflict', message: 'An object with that name already exists here.' };
    } else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      status = err.statusCode;
      body = { code: 'bad_request', message: err.message };
    } else {
      req.log.error({ err }, 'request failed');
      status = 500;
      body = { code: 'internal', message: ERROR_CODES.internal[1] };
    }
    void reply.status(status).type('application/json').send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ code: 'route_not_found', message: `No route ${req.method} ${req.url.split('?')[0]}.` });
  });
}
