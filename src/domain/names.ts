/**
 * The shapes of names that the API, the workflow compiler and the runner protocol all check, kept
 * here so that a workflow file accepts exactly what the API does.
 */

/** A runner label. */
export const LABEL = /^[A-Za-z0-9._:-]{1,64}$/;
export const LABEL_WORDS = '1-64 letters, digits, `.`, `_`, `:` or `-`';
/** An artifact name: also its file name in downloads. */
export const ARTIFACT_NAME = /^[A-Za-z0-9._-]{1,100}$/;
export const ARTIFACT_NAME_WORDS = '1-100 letters, digits, `.`, `_` or `-`';
/** A container image reference, as podman takes it (never an option: no leading `-`). */
export const IMAGE = /^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}$/;
export const IMAGE_WORDS = 'an image reference such as `alpine:3.20` or `registry.example.com/team/app@sha256:…`: letters, digits, `.`, `_`, `/`, `:`, `@` or `-`, starting with a letter or digit';
