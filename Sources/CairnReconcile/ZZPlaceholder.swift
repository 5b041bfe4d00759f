// Placeholder so the main package builds before the module lands; removed at integration.
