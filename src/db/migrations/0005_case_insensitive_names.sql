-- Names people read and type (organizations, projects, environments, workflows, repositories)
-- collide when they differ only in letter case, as "Staging" and "staging" would confuse anyone
-- picking one. Secrets, variables, tokens and artifacts keep exact names: shells and file
-- systems tell case apart.
--
-- Names that already differ only in case keep the oldest one; the later ones get the start of
-- their id appended (cut to stay within 100 characters), which is unique.

DO $$
DECLARE
  k record;
  scope text;
BEGIN
  FOR k IN SELECT * FROM (VALUES
    ('organizations', NULL, 'organizations_name_key'),
    ('projects', 'organization_id', 'projects_organization_id_name_key'),
    ('environments', 'project_id', 'environments_project_id_name_key'),
    ('workflows', 'project_id', 'workflows_project_id_name_key'),
    ('repositories', 'project_id', 'repositories_project_id_name_key')
  ) AS v (tab, scope_column, key_name) LOOP
    scope := coalesce(quote_ident(k.scope_column) || ', ', '');
    EXECUTE format(
      'UPDATE %I o SET name = left(o.name, 91) || ''-'' || left(o.id::text, 8)
       FROM (SELECT id, row_number() OVER (PARTITION BY %s lower(name) ORDER BY created_at, id) AS n FROM %I) d
       WHERE d.id = o.id AND d.n > 1', k.tab, scope, k.tab);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', k.tab, k.key_name);
    EXECUTE format('CREATE UNIQUE INDEX %I ON %I (%s lower(name))', k.key_name, k.tab, scope);
  END LOOP;
END $$;
