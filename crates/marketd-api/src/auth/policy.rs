//! The access policy: what a request needs from its caller.
//!
//! Every route states its [`Access`] per method where it is declared, in the
//! route table (`crate::route_table`); the table puts the request's
//! [`Declared`] in its extensions, and [`request_access`] reads it. Whatever
//! the table does not declare fails closed ([`Access::undeclared`]): unsafe
//! methods need `write`, anywhere.

use axum::extract::Request;
use axum::http::Method;
use marketd_model::Role;

/// What one method of a route needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// Anyone, with or without credentials (operations routes, docs, the
    /// dashboard).
    Open,
    /// Role `read` when `auth.require_read_key`, anyone otherwise.
    Read,
    /// Role `write`.
    Write,
    /// Role `admin`.
    Admin,
}

impl Access {
    /// The role a caller needs, `None` when anyone may call.
    pub fn required_role(self, require_read_key: bool) -> Option<Role> {
        match self {
            Access::Open => None,
            Access::Read => require_read_key.then_some(Role::Read),
            Access::Write => Some(Role::Write),
            Access::Admin => Some(Role::Admin),
        }
    }

    /// What a request the route table does not declare needs (an unknown
    /// path, or a method its route does not serve). Fails closed: a new
    /// write route is protected even if its declaration is forgotten.
    /// Reads under `/api/v1` are reads; outside it only reads exist, so
    /// anything else is a write; `OPTIONS` is open (answered by CORS or 405).
    pub fn undeclared(method: &Method, path: &str) -> Access {
        match *method {
            Method::OPTIONS => Access::Open,
            Method::GET | Method::HEAD if path.starts_with("/api/v1") => Access::Read,
            Method::GET | Method::HEAD => Access::Open,
            _ => Access::Write,
        }
    }
}

/// The route table's answer for one request, in its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared {
    /// What this request needs.
    pub access: Access,
    /// Every method the route declares is [`Access::Open`] (operations,
    /// docs, dashboard): a route nobody is kept from, nor rate limited on.
    pub open_route: bool,
}

/// The methods of one route and what each needs.
#[derive(Debug, Clone, Default)]
pub struct RouteAccess {
    methods: Vec<(Method, Access)>,
}

impl RouteAccess {
    /// Records that `method` needs `access`.
    pub fn declare(&mut self, method: Method, access: Access) {
        self.methods.retain(|(m, _)| *m != method);
        self.methods.push((method, access));
    }

    /// What `method` on this route (requested as `path`) needs. A method it
    /// does not declare is [`Access::undeclared`], except on a route only
    /// admins may use: there every method needs `admin`, so a non-admin
    /// learns nothing from it.
    pub fn declared(&self, method: &Method, path: &str) -> Declared {
        let open_route = self.methods.iter().all(|(_, a)| *a == Access::Open);
        let access = match self.methods.iter().find(|(m, _)| m == method) {
            Some((_, a)) => *a,
            None if !self.methods.is_empty()
                && self.methods.iter().all(|(_, a)| *a == Access::Admin) =>
            {
                Access::Admin
            }
            None => Access::undeclared(method, path),
        };
        Declared { access, open_route }
    }
}

/// What `req` needs: as declared by its route, or fail closed when the route
/// table has no declaration for it.
pub fn request_access(req: &Request) -> Access {
    match req.extensions().get::<Declared>() {
        Some(d) => d.access,
        None => Access::undeclared(req.method(), req.uri().path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undeclared_requests_fail_closed() {
        let api = "/api/v1/anything";
        assert_eq!(Access::undeclared(&Method::GET, api), Access::Read);
        assert_eq!(Access::undeclared(&Method::HEAD, api), Access::Read);
        assert_eq!(Access::undeclared(&Method::OPTIONS, api), Access::Open);
        assert_eq!(Access::undeclared(&Method::GET, "/elsewhere"), Access::Open);
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(Access::undeclared(&m, api), Access::Write, "{m}");
            assert_eq!(Access::undeclared(&m, "/elsewhere"), Access::Write, "{m}");
        }
        assert_eq!(Access::Read.required_role(false), None);
        assert_eq!(Access::Read.required_role(true), Some(Role::Read));
        assert_eq!(Access::Open.required_role(true), None);
    }

    #[test]
    fn admin_routes_need_admin_for_every_method() {
        let mut admin = RouteAccess::default();
        admin.declare(Method::GET, Access::Admin);
        let d = admin.declared(&Method::PATCH, "/api/v1/api-keys");
        assert_eq!((d.access, d.open_route), (Access::Admin, false));

        let mut ops = RouteAccess::default();
        ops.declare(Method::GET, Access::Open);
        let d = ops.declared(&Method::POST, "/health/live");
        assert_eq!((d.access, d.open_route), (Access::Write, true));
    }
}
