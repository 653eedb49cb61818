output "api_endpoints" {
  description = "Every region's API endpoints, by region."
  value = { for region in var.regions : region => [
    for n in local.nodes : "http://${module.node_config[n.key].api_address}" if n.region == region
  ] }
}

output "seed_address" {
  description = "The node every other node joined through."
  value       = local.seed_addr
}
