/**
 * The shapes of names that the API, the workflow compiler and the runner protocol all check, kept
 * here so that a workflow file accepts exactly what the API does.
 */

/** A runner label. */
export const LABEL = /^[A-Za-z0-9._:-]{1,64}$/;
/** An artifact name: also its file name in downloads. */
export const ARTIFACT_NAME = /^[A-Za-z0-9._-]{1,100}$/;
/** A container image reference, as podman takes it (never an option: no leading `-`). */
export const IMAGE = /^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}$/;
