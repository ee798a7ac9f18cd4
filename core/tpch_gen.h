// TPC-H-shaped data generation (ORDERS for now).
#pragma once
// The helper implementing core/tpch_gen.cpp defines the API here.
