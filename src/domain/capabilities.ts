export type Role = 'guest' | 'member' | 'manager' | 'owner';

/** Roles in increasing order of power; a role has every capability of the roles below it. */
export const ROLES: readonly Role[] = ['guest', 'member', 'manager', 'owner'];

/**
 * What each capability needs. Every API route names one of these (or `authenticated` for routes
 * about the caller alone, `admin` for instance-wide ones, `runner` for the runner protocol, which
 * runners reach with their own credential, `job` for the routes a running job reaches with its
 * job token).
 */
export const CAPABILITIES = {
  'organization.read': 'guest',
  'organization.update': 'manager',
  'organization.delete': 'owner',
  'members.read': 'guest',
  'members.write': 'manager',
  'project.create': 'manager',
  'project.read': 'guest',
  'project.update': 'manager',
  'project.delete': 'owner',
  'environment.read': 'guest',
  'environment.write': 'manager',
  'environment.delete': 'owner',
  'workflow.read': 'guest',
  'workflow.write': 'manager',
  'workflow.delete': 'owner',
  'repository.read': 'guest',
  'repository.write': 'manager',
  'repository.check': 'member',
  'repository.delete': 'owner',
  'secret.read': 'member',
  'secret.write': 'manager',
  'secret.delete': 'manager',
  'trigger.read': 'guest',
  /** Schedules start runs as the project's members could by hand. */
  'trigger.write': 'member',
  /** Deliveries hold what a forge or caller sent, which may say more than the runs show. */
  'delivery.read': 'member',
  /** Starts what a delivery starts, as a member could by hand. */
  'delivery.redeliver': 'member',
  'run.read': 'guest',
  'run.start': 'member',
  'run.cancel': 'member',
  /** Lets a job into a protected environment. */
  'job.approve': 'manager',
  'activity.read': 'guest',
  'runner.read': 'guest',
  'runner.manage': 'owner',
} as const satisfies Record<string, Role>;

export type Capability = keyof typeof CAPABILITIES | 'authenticated' | 'admin' | 'runner' | 'job';

export function roleRank(role: Role | null | undefined): number {
  return role ? ROLES.indexOf(role) : -1;
}

/** The stronger of an organization role and a project role. */
export function effectiveRole(...roles: (Role | null | undefined)[]): Role | null {
  let best: Role | null = null;
  for (const r of roles) if (r && roleRank(r) > roleRank(best)) best = r;
  return best;
}

export function allows(role: Role | null, capability: keyof typeof CAPABILITIES): boolean {
  return roleRank(role) >= roleRank(CAPABILITIES[capability]);
}
