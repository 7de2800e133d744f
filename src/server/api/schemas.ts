import { Type } from 'typebox';

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
