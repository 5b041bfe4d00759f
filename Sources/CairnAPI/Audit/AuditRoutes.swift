import Cairn
import Hummingbird

/// The web audit view's routes (`/` and its read endpoints). A placeholder the audit view
/// replaces; ``APIServer`` calls it after registering the API's own routes.
func registerAuditRoutes(on router: APIRouter, log: CairnLog) {}
