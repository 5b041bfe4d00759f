import CairnReconcile
enum ReconcileBenchmark { static func run(arguments: [String]) throws {} }
