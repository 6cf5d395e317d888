//! The route table: each route is declared in one line with its handler,
//! what each method needs from the caller ([`Access`]) and the kind of page
//! it serves ([`PageKind`], which picks its Content-Security-Policy).
//!
//! [`Routes`] builds the axum router and the [`RouteTable`] together, so the
//! two cannot disagree. The [`declare`] middleware finds the route axum
//! matched ([`MatchedPath`]) in the table and puts the request's
//! [`Declared`] and [`PageKind`] in its extensions, where authentication,
//! the rate limiter and the security headers read them. A request the table
//! does not declare gets neither, and each of them fails closed.

use crate::auth::policy::{Access, Declared, RouteAccess};
use crate::security::PageKind;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{self, MethodRouter};
use std::collections::HashMap;
use std::sync::Arc;

/// What is declared about one route.
#[derive(Debug, Clone)]
struct Entry {
    access: RouteAccess,
    page: PageKind,
}

/// Every declared route by its path template (as in [`MatchedPath`]).
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: HashMap<&'static str, Entry>,
}

impl RouteTable {
    /// The declaration of `method` on the route `template` (requested as
    /// `path`), `None` when the route is not in the table.
    pub fn lookup(
        &self,
        template: &str,
        method: &Method,
        path: &str,
    ) -> Option<(Declared, PageKind)> {
        let entry = self.routes.get(template)?;
        Some((entry.access.declared(method, path), entry.page))
    }

    /// The declared path templates.
    pub fn templates(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.routes.keys().copied()
    }
}

/// Builds a router whose every route states its access and page kind.
///
/// ```ignore
/// Routes::new()
///     .get("/api/v1/bars", Access::Read, prices::bars)
///     .post("/api/v1/prices/poll", Access::Write, polling::create)
///     .page("/", PageKind::Dashboard, dashboard::page)
/// ```
pub struct Routes<S> {
    router: Router<S>,
    table: RouteTable,
}

impl<S> Default for Routes<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Routes {
            router: Router::new(),
            table: RouteTable::default(),
        }
    }
}

/// One builder method per HTTP method of an API route: the method router
/// of axum plus the methods its declaration covers.
macro_rules! api_method {
    ($(#[$doc:meta])* $name:ident, $route:path, [$($method:expr),+]) => {
        $(#[$doc])*
        pub fn $name<H, T>(self, path: &'static str, access: Access, handler: H) -> Self
        where
            H: Handler<T, S>,
            T: 'static,
        {
            self.add(path, &[$($method),+], access, PageKind::Api, $route(handler))
        }
    };
}

impl<S> Routes<S>
where
    S: Clone + Send + Sync + 'static,
{
    pub fn new() -> Self {
        Self::default()
    }

    api_method!(
        /// `GET` (and `HEAD`) of an API route.
        get, routing::get, [Method::GET, Method::HEAD]
    );
    api_method!(
        /// `POST` of an API route.
        post, routing::post, [Method::POST]
    );
    api_method!(
        /// `PUT` of an API route.
        put, routing::put, [Method::PUT]
    );
    api_method!(
        /// `DELETE` of an API route.
        delete, routing::delete, [Method::DELETE]
    );

    /// A page (or one of its assets) anyone may `GET`, with the CSP of `kind`.
    pub fn page<H, T>(self, path: &'static str, kind: PageKind, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let methods = [Method::GET, Method::HEAD];
        self.add(path, &methods, Access::Open, kind, routing::get(handler))
    }

    fn add(
        mut self,
        path: &'static str,
        methods: &[Method],
        access: Access,
        page: PageKind,
        route: MethodRouter<S>,
    ) -> Self {
        let entry = self.table.routes.entry(path).or_insert_with(|| Entry {
            access: RouteAccess::default(),
            page,
        });
        // One route answers with one CSP, whatever the method.
        assert_eq!(
            entry.page, page,
            "route {path} declared as two kinds of page"
        );
        for m in methods {
            entry.access.declare(m.clone(), access);
        }
        self.router = self.router.route(path, route);
        self
    }

    /// The router and its table (for [`declare`]).
    pub fn into_parts(self) -> (Router<S>, Arc<RouteTable>) {
        (self.router, Arc::new(self.table))
    }
}

/// Puts what the table declares about the request's route in its
/// extensions. Layer it outside every middleware that reads them: layers of
/// an axum router run after routing, so [`MatchedPath`] is known here.
pub async fn declare(
    State(table): State<Arc<RouteTable>>,
    mut req: Request,
    next: Next,
) -> Response {
    let found = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| table.lookup(p.as_str(), req.method(), req.uri().path()));
    if let Some((declared, page)) = found {
        req.extensions_mut().insert(declared);
        req.extensions_mut().insert(page);
    }
    next.run(req).await
}
