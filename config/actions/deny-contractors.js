/**
 * Post-login action: contractors may not use the applications behind this
 * gateway; everyone else gets their plan as a namespaced claim.
 *
 * @param {Event} event - Details about the user and the context in which they are logging in.
 * @param {PostLoginAPI} api - Interface whose methods can be used to change the behavior of the login.
 */
exports.onExecutePostLogin = async (event, api) => {
  if ((event.user.email || '').endsWith('@contractor.example')) {
    api.access.deny('Contractors may not use ' + event.client.name + '.');
    return;
  }
  const plan = (event.user.app_metadata && event.user.app_metadata.plan) || 'free';
  api.accessToken.setCustomClaim('https://example.com/plan', plan);
};
