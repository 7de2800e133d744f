import { Type } from 'typebox';
import { ARTIFACT_NAME, ARTIFACT_NAME_WORDS, IMAGE, IMAGE_WORDS, LABEL, LABEL_WORDS } from '../../domain/names.js';

/** Schemas shared by several resources. */
export const IdParams = Type.Object({ id: Type.String({ description: 'Object id (UUID)' }) });
export const Name = Type.String({ minLength: 1, maxLength: 100, pattern: '^\\S(.*\\S)?$', description: '1-100 characters, no surrounding spaces' });
export const RoleSchema = Type.Union([Type.Literal('guest'), Type.Literal('member'), Type.Literal('manager'), Type.Literal('owner')]);
/** Variable names as a shell accepts them. */
export const VariableMap = Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', maxLength: 128 }), Type.String({ maxLength: 65536 }), {
  maxProperties: 500,
  additionalProperties: false,
  description: 'Variable names map to values; names as a shell accepts them',
});
/** The name of the organization or project a DELETE removes, as `?confirm=NAME`. */
export const ConfirmQuery = Type.Object({ confirm: Type.Optional(Type.String({ maxLength: 200, description: 'The name of the object to delete, which the deletion requires' })) });

const REF_WORDS = 'a branch or tag name: no spaces and none of `~ ^ : ? * [ \\`, not starting with `-`';

/**
 * Every pattern a route's schema holds, said in words: a person reads what is allowed, not a
 * regex. A test checks that each pattern of the OpenAPI document is here.
 */
export const PATTERN_WORDS: ReadonlyMap<string, string> = new Map([
  ['^\\S(.*\\S)?$', 'text without spaces at its start or end'],
  ['^[A-Za-z_][A-Za-z0-9_]*$', 'letters, digits and `_`, not starting with a digit'],
  ['^[0-9]{1,18}$', 'the `nextCursor` of the previous page'],
  ['^[1-9]', 'a date from year 1000 on'],
  ['^[0-9a-f]{40}$', 'a full commit sha: 40 characters 0-9 and a-f'],
  ['^[^-\\s~^:?*\\[\\\\][^\\s~^:?*\\[\\\\]*$', REF_WORDS],
  ['^(?!-)[^\\s~^:?*\\[\\\\]+$', REF_WORDS],
  ['^[^-\\s]\\S*$', 'a branch, tag or commit sha: no spaces, not starting with `-`'],
  ['^\\.furrow/[^/]+\\.ya?ml$', 'a file directly in `.furrow/` ending in `.yml` or `.yaml`'],
  ['^[^\\s]+$', 'text without spaces'],
  ['^https?://[^\\s]+$', 'an http:// or https:// URL without spaces'],
  [LABEL.source, LABEL_WORDS],
  [ARTIFACT_NAME.source, ARTIFACT_NAME_WORDS],
  [IMAGE.source, IMAGE_WORDS],
]);

/** The formats routes use, said in words. */
export const FORMAT_WORDS: Readonly<Record<string, string>> = { uuid: 'a UUID', email: 'an email address', 'date-time': 'a date and time (ISO 8601)', uri: 'a URL' };
