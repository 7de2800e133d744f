/**
 * Names a run's parameters may never set: they change how the shell or the loader start, where
 * commands come from, or what Furrow itself tells the job. A parameter such as `BASH_ENV` would
 * make bash source a file of the starter's choice before the workflow's own script.
 */
const RESERVED = new Set(['BASH_ENV', 'ENV', 'PATH', 'IFS', 'PS4', 'PROMPT_COMMAND', 'SHELLOPTS', 'BASHOPTS', 'CDPATH', 'GLOBIGNORE', 'HOME', 'SHELL', 'USER', 'LOGNAME', 'CI', 'SSH_AUTH_SOCK', 'NODE_OPTIONS', 'PYTHONSTARTUP', 'PYTHONPATH', 'PERL5OPT', 'PERL5LIB', 'RUBYOPT']);
const RESERVED_PREFIXES = ['LD_', 'FURROW_', 'BASH_FUNC_', 'GIT_', 'MATRIX_'];

export interface ParameterRules {
  /** The workflow's declared inputs; null when it declares none (then any other name may pass). */
  inputs: readonly string[] | null;
  /** Names set by the run's environments (variables) or by secrets: a parameter never overrides them. */
  protectedNames: ReadonlyMap<string, string>;
}

export interface ParameterProblem {
  field: string;
  message: string;
}

/** Why a run's parameters are refused, one problem per parameter; empty when they all pass. */
export function checkParameters(parameters: Record<string, string>, rules: ParameterRules): ParameterProblem[] {
  const problems: ParameterProblem[] = [];
  for (const name of Object.keys(parameters)) {
    const field = `parameters.${name}`;
    const prefix = RESERVED_PREFIXES.find((p) => name.startsWith(p));
    if (RESERVED.has(name) || prefix) {
      problems.push({ field, message: prefix ? `names starting with ${prefix} are reserved` : `${name} is reserved: it changes how the job's shell starts` });
    } else if (rules.protectedNames.has(name)) {
      problems.push({ field, message: `is set by ${rules.protectedNames.get(name)}, which a parameter cannot override` });
    } else if (rules.inputs && !rules.inputs.includes(name)) {
      problems.push({ field, message: rules.inputs.length > 0 ? `is not an input of this workflow (its inputs: ${rules.inputs.join(', ')})` : 'is not an input of this workflow (it declares none)' });
    }
  }
  return problems;
}
