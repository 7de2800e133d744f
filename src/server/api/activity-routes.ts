import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { listProjectActivities } from '../store/activity-store.js';
import type { Resources } from '../resources.js';
import { IdParams } from './schemas.js';

const Query = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'nextCursor of the previous page' })),
    type: Type.Optional(Type.String({ maxLength: 100, description: 'Activity type, `*` as wildcard (e.g. `run.*`)' })),
  },
  { additionalProperties: false },
);

export const activityRoutes: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  app.get(
    '/projects/:id/activities',
    { config: { access: { capability: 'activity.read', scope: { kind: 'project', param: 'id' } } }, schema: { tags: ['activities'], summary: 'What happened in the project, newest first', params: IdParams, querystring: Query } },
    async (req) =>
      listProjectActivities(res.database.db, req.params.id, {
        limit: req.query.limit,
        ...(req.query.cursor ? { before: Number(req.query.cursor) } : {}),
        ...(req.query.type ? { type: req.query.type } : {}),
      }),
  );
};
