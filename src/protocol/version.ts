/** Furrow's release version: reported by runners, shown in the API's OpenAPI document. */
export const FURROW_VERSION = '0.1.0';
