import type { FastifyError, FastifyInstance } from 'fastify';
import type { Db } from '../db/database.js';
import { AppError, ERROR_CODES, type ErrorCode } from './app-error.js';
import { closestWord } from '../domain/closest-word.js';
import { FORMAT_WORDS, PATTERN_WORDS } from './api/schemas.js';
import { nameConflict } from './name-conflict.js';
import { isTransientDatabaseError } from '../db/transient-error.js';

interface AjvError {
  instancePath: string;
  schemaPath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
  /** The schema holding the failed keyword (the validators run with `verbose`). */
  parentSchema?: { properties?: Record<string, unknown>; patternProperties?: Record<string, unknown>; description?: string };
}

/** Names the field an ajv error is about, as a dotted path (`variables.FOO`, `timeoutSeconds`). */
function fieldOf(e: AjvError, context: string | undefined): string {
  const base = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const child = (e.params.missingProperty ?? e.params.additionalProperty) as string | undefined;
  const field = [base, child].filter(Boolean).join('.');
  return field || (context === 'body' ? '(body)' : `(${context ?? 'request'})`);
}

const quote = (v: unknown) => (typeof v === 'string' ? `"${v}"` : JSON.stringify(v));

function describe(e: AjvError): string {
  if (e.keyword === 'additionalProperties') {
    const keyPattern = Object.keys(e.parentSchema?.patternProperties ?? {})[0];
    if (keyPattern) return `is not an allowed name: use ${PATTERN_WORDS.get(keyPattern) ?? 'another name'}`;
    const known = Object.keys(e.parentSchema?.properties ?? {});
    const near = closestWord(String(e.params.additionalProperty), known);
    return near ? `is not a known field; did you mean "${near}"?` : `is not a known field${known.length ? ` (known: ${known.join(', ')})` : ''}`;
  }
  if (e.keyword === 'required') return 'is required';
  if (e.keyword === 'pattern') return `must be ${PATTERN_WORDS.get(String(e.params.pattern)) ?? e.parentSchema?.description ?? 'in another form'}`;
  if (e.keyword === 'format') return `must be ${FORMAT_WORDS[String(e.params.format)] ?? `in the format ${String(e.params.format)}`}`;
  if (e.keyword === 'enum') return `must be one of ${(e.params.allowedValues as unknown[]).map(quote).join(', ')}`;
  if (e.keyword === 'const') return `must be ${quote(e.params.allowedValue)}`;
  if (e.keyword === 'type') return `must be ${String(e.params.type).replace(/,/g, ' or ')}`;
  return e.message ?? 'is not valid';
}

/**
 * One line per field: the alternatives of a union (`anyOf`) fold into the failed union, as
 * "must be one of "a", "b"" when they are constants, else their messages joined by "or".
 */
function detailsOf(errors: AjvError[], context: string | undefined): { field: string; message: string }[] {
  const unions = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  const inUnion = (e: AjvError) => unions.some((u) => u !== e && e.instancePath === u.instancePath && e.schemaPath.startsWith(`${u.schemaPath}/`));
  const seen = new Map<string, { field: string; message: string }>();
  for (const e of errors) {
    if (inUnion(e)) continue;
    let message = describe(e);
    if (unions.includes(e)) {
      const branches = errors.filter((b) => b !== e && b.instancePath === e.instancePath && b.schemaPath.startsWith(`${e.schemaPath}/`));
      // A nullable choice fails its null branch as a type: it still reads as a choice.
      const isNull = (b: AjvError) => b.keyword === 'type' && b.params.type === 'null';
      const constants = branches.filter((b) => b.keyword === 'const');
      if (constants.length > 0 && branches.every((b) => b.keyword === 'const' || isNull(b))) {
        message = `must be one of ${constants.map((b) => quote(b.params.allowedValue)).join(', ')}${branches.some(isNull) ? ', or null' : ''}`;
      } else if (branches.length > 0) message = [...new Set(branches.map(describe))].join(', or ');
    }
    const field = fieldOf(e, context);
    seen.set(`${field}\n${message}`, { field, message });
  }
  return [...seen.values()];
}

/**
 * Postgres errors that only bad input causes, when a route let it reach the database: the
 * client gets what it would have got from a schema, never a 500.
 */
const DATABASE_INPUT_ERRORS: Record<string, [number, ErrorCode, string]> = {
  '22021': [400, 'validation_failed', 'Text may not contain NUL characters (\\u0000).'],
  '22P02': [400, 'validation_failed', 'A value is not of the expected kind (an id must be a UUID, a number a number).'],
  '22001': [400, 'validation_failed', 'A value is longer than the server stores.'],
  '22003': [400, 'validation_failed', 'A number is out of the range the server stores.'],
  '22007': [400, 'validation_failed', 'A date or time is not valid.'],
  '22008': [400, 'validation_failed', 'A date or time is out of range.'],
  '23514': [400, 'validation_failed', 'A value breaks a rule of the object it belongs to.'],
  '23503': [409, 'conflict', 'The object refers to another that does not exist (any more), or is still referred to.'],
  '23505': [409, 'conflict', 'An object with that name already exists here.'],
};

function databaseInputError(err: unknown): [number, ErrorCode, string] | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && !(err instanceof AppError) ? DATABASE_INPUT_ERRORS[code] : undefined;
}

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
};

/** What a 503 `database_unavailable` suggests: a restart or a failover takes seconds. */
const RETRY_AFTER_SECONDS = 2;

/** Every error leaves as `{ code, message, details? }`; nothing internal reaches the client. */
export function installErrorHandler(app: FastifyInstance, db: Db): void {
  app.setErrorHandler(async (caught: FastifyError & { validationContext?: string }, req, reply) => {
    // A name already taken is told as which object has it.
    const err = (databaseInputError(caught)?.[0] === 409 ? await nameConflict(db, caught as never).catch(() => undefined) : undefined) ?? caught;
    let body: { code: string; message: string; details?: unknown };
    let status: number;
    if (err instanceof AppError) {
      status = err.status;
      body = { code: err.code, message: err.message, ...(err.details !== undefined ? { details: err.details } : {}) };
    } else if (err.validation) {
      const details = detailsOf(err.validation as AjvError[], err.validationContext);
      status = 400;
      body = { code: 'validation_failed', message: `Invalid ${err.validationContext ?? 'request'}: ${details.map((d) => `${d.field} ${d.message}`).join('; ')}`, details };
    } else if (err.code && FASTIFY_CODES[err.code]) {
      const code = FASTIFY_CODES[err.code]!;
      status = ERROR_CODES[code][0];
      body = { code, message: code === 'invalid_json' ? `The request body is not valid JSON: ${err.message}` : ERROR_CODES[code][1] };
    } else if (err.statusCode === 429) {
      status = 429;
      body = { code: 'rate_limited', message: ERROR_CODES.rate_limited[1] };
    } else if (databaseInputError(err)) {
      const [dbStatus, code, message] = databaseInputError(err)!;
      req.log.info({ err }, 'request refused by the database');
      status = dbStatus;
      body = { code, message };
    } else if (isTransientDatabaseError(err)) {
      // Not half-written either way: the request's transaction rolled back, never began, or (its connection broken at COMMIT) took effect whole.
      req.log.warn({ err }, 'request failed while the database was unavailable');
      status = 503;
      body = { code: 'database_unavailable', message: ERROR_CODES.database_unavailable[1] };
      void reply.header('retry-after', String(RETRY_AFTER_SECONDS));
    } else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      status = err.statusCode;
      body = { code: 'bad_request', message: err.message };
    } else {
      req.log.error({ err }, 'request failed');
      status = 500;
      body = { code: 'internal', message: ERROR_CODES.internal[1] };
    }
    return reply.status(status).type('application/json').send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ code: 'route_not_found', message: `No route ${req.method} ${req.url.split('?')[0]}.` });
  });
}
