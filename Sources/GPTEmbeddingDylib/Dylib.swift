// libgpt_embedding.so is linked from this target. It holds no code: it exists to
// carry the linker flags of the shared library (static Swift runtime, the export
// list in exports.map, the SONAME), which only the dynamic product may see.
