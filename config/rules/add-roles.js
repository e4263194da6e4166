function addRolesToTokens(user, context, callback) {
  // Roles copied from app_metadata into a namespaced claim (a common Auth0 rule).
  const namespace = configuration.ROLES_NAMESPACE;
  const assignedRoles = (user.app_metadata && user.app_metadata.roles) || [];
  context.accessToken[namespace + 'roles'] = assignedRoles;
  context.idToken[namespace + 'roles'] = assignedRoles;
  return callback(null, user, context);
}
