"""A paste filter for the register tests' "context" Glance: it plays the
part of keystonemiddleware without a Keystone. An X-Auth-Token of the form
"PROJECT_ID:ROLE[,ROLE...]" becomes the identity headers glance's
ContextMiddleware reads (X-Identity-Status, X-Project-Id, X-Roles); any
other token, or none, is rejected with 401 as an invalid token would be.
A token whose project starts with "expiring-" is valid until the image
data is uploaded: a PUT with it is rejected with 401 before Glance reads
the body, as a token that expires during a run would be."""
import webob
import webob.dec


def filter_factory(global_conf, **local_conf):
    def wrap(app):
        @webob.dec.wsgify
        def middleware(req):
            for h in ("X-Identity-Status", "X-Project-Id", "X-Roles", "X-User-Id"):
                req.headers.pop(h, None)
            token = req.headers.get("X-Auth-Token", "")
            project, sep, roles = token.partition(":")
            if not sep or not project or not roles:
                return webob.exc.HTTPUnauthorized(
                    explanation="The request you have made requires authentication.")
            if project.startswith("expiring-") and req.method == "PUT":
                return webob.exc.HTTPUnauthorized(
                    explanation="The token expired during the upload.")
            req.headers["X-Identity-Status"] = "Confirmed"
            req.headers["X-Project-Id"] = project
            req.headers["X-User-Id"] = "user-of-" + project
            req.headers["X-Roles"] = roles
            return req.get_response(app)
        return middleware
    return wrap
