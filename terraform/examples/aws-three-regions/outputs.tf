output "api_endpoints" {
  description = "Every region's API endpoints, by Meridian region name."
  value = {
    (var.regions[0].name) = module.r0.api_endpoints
    (var.regions[1].name) = module.r1.api_endpoints
    (var.regions[2].name) = module.r2.api_endpoints
  }
}

output "seed_address" {
  description = "The address further nodes and regions join through."
  value       = module.r0.seed_address
}
