-- Names people read and type (organizations, projects, environments, workflows, repositories)
-- collide when they differ only in letter case, as "Staging" and "staging" would confuse anyone
-- picking one. Secrets, variables, tokens and artifacts keep exact names: shells and file
-- systems tell case apart.
--
-- Names that already differ only in case keep the oldest one; the later ones get the start of
-- their id appended (cut to stay within 100 characters), which is unique.

UPDATE organizations o SET name = left(o.name, 91) || '-' || left(o.id::text, 8)
FROM (SELECT id, row_number() OVER (PARTITION BY lower(name) ORDER BY created_at, id) AS n FROM organizations) d
WHERE d.id = o.id AND d.n > 1;
ALTER TABLE organizations DROP CONSTRAINT organizations_name_key;
CREATE UNIQUE INDEX organizations_name_key ON organizations (lower(name));

UPDATE projects o SET name = left(o.name, 91) || '-' || left(o.id::text, 8)
FROM (SELECT id, row_number() OVER (PARTITION BY organization_id, lower(name) ORDER BY created_at, id) AS n FROM projects) d
WHERE d.id = o.id AND d.n > 1;
ALTER TABLE projects DROP CONSTRAINT projects_organization_id_name_key;
CREATE UNIQUE INDEX projects_organization_id_name_key ON projects (organization_id, lower(name));

UPDATE environments o SET name = left(o.name, 91) || '-' || left(o.id::text, 8)
FROM (SELECT id, row_number() OVER (PARTITION BY project_id, lower(name) ORDER BY created_at, id) AS n FROM environments) d
WHERE d.id = o.id AND d.n > 1;
ALTER TABLE environments DROP CONSTRAINT environments_project_id_name_key;
CREATE UNIQUE INDEX environments_project_id_name_key ON environments (project_id, lower(name));

UPDATE workflows o SET name = left(o.name, 91) || '-' || left(o.id::text, 8)
FROM (SELECT id, row_number() OVER (PARTITION BY project_id, lower(name) ORDER BY created_at, id) AS n FROM workflows) d
WHERE d.id = o.id AND d.n > 1;
ALTER TABLE workflows DROP CONSTRAINT workflows_project_id_name_key;
CREATE UNIQUE INDEX workflows_project_id_name_key ON workflows (project_id, lower(name));

UPDATE repositories o SET name = left(o.name, 91) || '-' || left(o.id::text, 8)
FROM (SELECT id, row_number() OVER (PARTITION BY project_id, lower(name) ORDER BY created_at, id) AS n FROM repositories) d
WHERE d.id = o.id AND d.n > 1;
ALTER TABLE repositories DROP CONSTRAINT repositories_project_id_name_key;
CREATE UNIQUE INDEX repositories_project_id_name_key ON repositories (project_id, lower(name));
