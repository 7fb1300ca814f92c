namespace larmor {}
