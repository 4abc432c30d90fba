select
    p.sku_id, p.category, p.supplier_id, p.unit_cost, p.base_price, p.case_pack, p.min_order_qty,
    s.lead_time_days as supplier_lead_time_days,
    s.lead_time_std_days as supplier_lead_time_std_days
from {{ ref('stg_products') }} p
left join {{ ref('stg_suppliers') }} s using (supplier_id)
